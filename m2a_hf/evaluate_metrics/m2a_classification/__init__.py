"""The `m2a_classification` evaluate metric (`m2a_classification.py`); a package only so that m2a_hf imports it."""
