"""The decoding study: entropy-based decoders and a hyperfitted model on a quality-diversity frontier
(``params/decoding.yaml``, ``notebooks/08_decoding.ipynb``): :mod:`.spec` reads its section of the parameter file,
:mod:`.study` finds the models and runs :mod:`.grid` (with :mod:`.hyperfit`), :mod:`.tables`, :mod:`.figures` and
:mod:`.report` make what the notebook shows."""
