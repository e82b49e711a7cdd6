"""Reports: what finished runs measured, as tables and plots (read from results CSVs, never from a model).

Modules, one job each:
    report            a comparison's summary: mean ± sd per method and fraction, paired differences, a plot
    benchmark_report  a benchmark's table as the PEFT papers print it: one row per method, one column per task
    method_map        every form of HoRA and each baseline against LoRA on every measured setting: table, forest plot
    peft_report       our runs beside PEFT's published MetaMathQA results
"""
