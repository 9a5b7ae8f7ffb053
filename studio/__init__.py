"""nftgan studio: a local web app over a workspace, at the composition layer (beside the CLI and the flows).

``nftgan studio`` serves :func:`studio.app.create_app`; pages read through the stages' public faces
(:mod:`studio.views`), long work runs in :mod:`studio.jobs`.
"""
