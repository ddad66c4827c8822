"""Tools off the production path: the shop generator, the MovieLens benchmark and the
end-of-run summary.
"""
