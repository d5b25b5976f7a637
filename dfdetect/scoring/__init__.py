"""How scores are scored, written once: clip -> video aggregation (``video``), AUC and the equal
error rate (``roc``), logits and temperature (``temperature``) and the ``calibration.json`` that
carries a fitted temperature and thresholds from evaluation to predict and serve
(``calibration``). Training metrics, evaluation, predict, cross-validation, late fusion and face
verification all use these; nothing here knows of models or configs."""
