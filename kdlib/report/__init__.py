"""What a reader sees: tables, figures and findings files (`render`), findings sentences (`findings`), the answer
first (`headline`), the index page (`index`, in the order of `story`), colours (`palette`), the published table
(`published`) and the derived tables computed from products (`tables`)."""
