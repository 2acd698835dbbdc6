"""The product catalogue (issue 14): products, their import, and how events name them."""
