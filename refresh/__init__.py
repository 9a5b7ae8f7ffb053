"""The refresh policy, as plain code: what a nightly refresh of a collection does and decides.

Scrape (only what is new) → prepare → train (a run named by the data and the options; warm-started from the
champion for a share of the budget) → evaluate → challenge the champion (promoted only when better beyond
the noise); a failure is recorded and never demotes the champion.

``flows.refresh_collection`` runs it with every stage as a Prefect flow or task (caching, retries,
artifacts); ``nftgan refresh`` runs the same policy with the stage functions called directly (cron, or
debugging one night's decision without a server). Part of the composition layer, beside ``commands`` and
``flows.py``: it imports the stages, and nothing below imports it. No Prefect here.
"""

from refresh.params import EvalParams, PrepareParams, ScrapeParams, TrainParams
from refresh.policy import DirectStages, Stages, is_champion, refresh, run_name, training_options, training_plan

__all__ = [
    "DirectStages", "EvalParams", "PrepareParams", "ScrapeParams", "Stages", "TrainParams", "is_champion", "refresh",
    "run_name", "training_options", "training_plan",
]
