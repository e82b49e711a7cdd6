"""Scores: what a trained model gets on a split, and how a score is named and written wherever it is shown.

Modules, one job each:
    metrics     a benchmark's metric from predictions and true labels (accuracy, F1, Matthews, Pearson, ...)
    evaluation  scoring a trained model: classification and regression forwards, greedy generation, answer rules
    score_text  a score's name and unit (a rate in %, a correlation as a number) in tables, cards, plots, lines
"""
