"""Where a profile's files live (`paths`), how expensive results are written and found again (`cache`), and whether
what an earlier run left is whole (`whole`).

Above `config`, below everything that reads or writes a product.
"""
