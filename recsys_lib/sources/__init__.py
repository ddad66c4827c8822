"""Candidate sources: the lists a user's candidates come from (similar items, bought
together, category popularity, the union of all six). Pure DataFrame functions over the
frames a stage reads; no table access.
"""
