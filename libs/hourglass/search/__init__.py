"""Personalized product search: user + query + history → next item. `queries` derives the queries
that public Amazon data lacks from each purchased item's category path (Ai et al., SIGIR 2017)."""

# The longest query kept, in characters after cleaning: far beyond a typed search (tens of
# characters), so only pasted text or a wrong column reaches it. Ingest quarantines longer ones;
# derived queries leave such a path out.
MAX_QUERY_CHARS = 512
