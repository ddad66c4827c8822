"""Pure DataFrame transforms shared by stages and models: windows, top-n cuts,
pseudonyms, the catalogue snapshot, portraits and ranking features. No table access.
"""
