"""The cleaning stage: originals in the catalog → a de-duplicated uint8 tensor cache.

Public face: ``cleaning.prepare`` (:class:`~cleaning.prepare.PrepareConfig`, :func:`~cleaning.prepare.prepare`,
:func:`~cleaning.prepare.inputs_fingerprint`) and ``cleaning.importer.import_directory``. Below it, each usable
alone: ``decode`` (one file → normalized pixels and facts), ``dedup`` (which items are copies of which),
``review`` (the sheet of merged pairs).
"""
