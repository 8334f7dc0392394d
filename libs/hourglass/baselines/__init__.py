"""Baselines scored on the generative model's splits with its metric code: SASRec (ID-based)
and the personalized-search baselines (`search`: dense query, query + history, popularity)."""
