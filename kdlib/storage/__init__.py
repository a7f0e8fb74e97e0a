"""Where a profile's files live (`paths`) and how expensive results are written and found again (`cache`).

Above `config`, below everything that reads or writes a product.
"""
