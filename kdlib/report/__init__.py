"""What a reader sees: tables, figures and findings files (`render`), findings sentences (`findings`), the index page
(`index`, in the order of `story`), colours (`palette`) and the published table (`published`)."""
