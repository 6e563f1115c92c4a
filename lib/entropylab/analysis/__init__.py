"""Generic analysis of results tables: seed bands and tests, trends, claims with verdicts, tables, figures."""
