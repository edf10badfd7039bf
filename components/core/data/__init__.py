"""Data in: sources read into one table (``sources``), the content-hash split into train /
validation / test (``split``) and the fitted preprocessing with the choice of feature columns
(``features``)."""
