"""An imitation of a marketplace, for tests, benchmarks, the demo and trying the scraper offline.

Not part of the pipeline: only the command line (``nftgan fixture serve``, ``nftgan demo``), tests and
benchmarks import it. ``fixture`` serves a collection on 127.0.0.1 (``fixture_os2``: the page as OpenSea
serves it today); ``democollection`` and ``pixelcollection`` draw the collections it serves.
"""
