"""Scoring attack records (paper §4.2.6–4.2.7, §6): the six attack metrics before and after a
defense (``metrics``), Table 2 (``table2``), Fig. 4-style charts (``plots``) and the rescore
report that ``evaluate.py`` writes into its run dir (``report``)."""
