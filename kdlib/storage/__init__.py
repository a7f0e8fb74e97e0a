"""Where a profile's files live (`paths`), how expensive results are written and found again (`cache`), whether
what an earlier run left is whole (`whole`), one probe of the Hugging Face Hub (`hub`) and progress bars (`progress`).

Above `config`, below everything that reads or writes a product.
"""
