"""Item text → dense embeddings with a Hugging Face encoder (no Spark here)."""
