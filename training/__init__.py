"""Training: the DCGAN family on a collection's uint8 tensor cache.

Public face (import from the modules; this package imports nothing heavy so ``nftgan --help`` stays fast):

- ``training.config.TrainConfig`` and ``training.train.train(ws, slug, config, *, progress=None) -> TrainSummary``
- ``training.checkpoints``: ``list_checkpoints``, ``load_generator``, ``mark_best``, ``best_step``
- ``training.sampling``: ``generate_uint8``, ``sample`` / ``SampleConfig``, ``interpolate`` / ``InterpolateConfig``
- ``training.warm``: ``check_warm_start``, ``warm_start_source`` (start a run from the champion or another run)
- ``training.recipes``: named ``TrainConfig`` overrides (``cpu`` = the defaults, ``gpu``), measured in docs/quality.md
- ``training.pixelart``: ``read_pixel_art``, ``snap_to_pixel_art`` (samples on the collection's grid and palette)
"""
