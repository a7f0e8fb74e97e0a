"""The five stage builders, one module each, and the readers of their products (`products`).

A builder reads its upstream stages' products only through `products`; no stage module imports another.
"""
