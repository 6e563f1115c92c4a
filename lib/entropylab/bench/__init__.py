"""The benchmark: the naive Keras pipeline (the reference, :mod:`entropylab.bench.naive`) against ours, side by side.

``python -m entropylab bench [--quick] [--epochs N] [--pipelines naive,ours,...]`` (``make bench``) trains the
paper's model (linear head, the paper's mean squared error, batch 32, the same data and split) once per
pipeline, each in its own child process so that its peak resident memory is its own, and reports per pipeline:

* ``seconds_per_epoch``: the median wall time of the epochs after the first (the first holds graph tracing and
  XLA compilation and is reported apart as ``first_epoch_seconds``); with one epoch, that epoch. An epoch runs
  from Keras' ``on_epoch_begin`` to the end of its validation pass (naive: ``val_loss``; ours: every metric);
* ``sequences_per_second = n_train / seconds_per_epoch``;
* ``peak_rss_mb``: the child's peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``), data and runtime
  included;
* ``time_vs_naive = seconds_per_epoch / naive's`` and ``memory_vs_naive = peak_rss_mb / naive's``;
* the loss curves (``loss``, ``val_loss`` per epoch), to show that the pipelines optimise the same objective.

It prints a table and writes ``<output-dir>/<date>_<time>[_quick].csv`` (one row per pipeline, with the machine,
versions and settings) and ``<same>_epochs.csv`` (one row per pipeline and epoch); the output folder defaults to
``<outputs>/benchmarks`` (``$ENTROPYLAB_OUTPUTS`` or ``outputs``). ``docs/performance.md`` has the results and
where the time goes.

Developer tools (``python -m entropylab.bench --help``): ``ab`` runs pipelines alternately, several times,
and prints medians (how each speed-up was decided); ``profile`` times the parts of one training step.

Modules: :mod:`~entropylab.bench.pipelines` (what is measured), :mod:`~entropylab.bench.naive` (the reference
pipeline), :mod:`~entropylab.bench.runner` (child processes, measurements, the benchmark),
:mod:`~entropylab.bench.report` (machine, CSVs, printed table and verdict), :mod:`~entropylab.bench.profile`
(arithmetic counts and a timing of one training step). The command line's modes: :mod:`~entropylab.bench.generation`
(``entropylab bench generation``) and :mod:`~entropylab.bench.overhead` (``entropylab bench overhead``: where one
run's time goes, outside its epochs and inside them). Importing the package loads none of them.
"""
