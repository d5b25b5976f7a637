"""The paper's scoring of the measured answers: attack records from the cache (``from_cache``) or
from the authors' own results (``tariq2022``); scoring them (paper §4.2.6–4.2.7, §6): the six attack metrics before and after a
defense (``metrics``), Table 2 (``table2``), Fig. 4-style charts (``plots``) and the rescore
report that ``evaluate.py`` writes into its run dir (``report``)."""
