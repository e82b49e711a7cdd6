"""Data: every source a run can train on, read once into fixed seeded splits.

Modules, one job each:
    datasource   the one place that turns a data source (built-in task, Hub ID, local files) into splits
    tasks        the data types, the built-in tasks, the split rule, data fractions, encoding for the Trainer
    filelist     image folders described by split list files (VTAB-1k's layout) as ``datasets`` splits
    commonsense  LLM-Adapters' commonsense format: the prompt and the rule that reads an answer
    metamathqa   PEFT's MetaMathQA -> GSM8K comparison: its data, splits, prompt, answer rule and result file
                 (with ``metamathqa_training_params.json``, PEFT's defaults read as data)
"""
