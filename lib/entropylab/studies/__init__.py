"""The studies, each a folder of the same shape: what its source reports, its claims, its tables and figures."""
