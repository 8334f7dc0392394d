"""ID-based baselines (SASRec) scored on the generative model's splits with its metric code."""
