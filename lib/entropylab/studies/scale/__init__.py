"""The scale study (``make scale``): do the objectives' verdicts hold as the model approaches the truth? Data size
x model size x objectives on the hidden-state source (:mod:`.spec`, :mod:`.study`, :mod:`.tables`,
:mod:`.figures`, :mod:`.report`)."""
