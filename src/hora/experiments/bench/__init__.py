"""Speed and memory of HoRA against PEFT's LoRA and a minimal reference LoRA, measured side by side.

Every number is a ratio of two variants measured in one process, in interleaved repeats (the order of the
variants rotates every repeat), as the median of many steps after warm-up, with a fixed thread count. The
variants share one architecture, rank, alpha and target modules (q/k/v by default):

* ``peft_lora``: ``peft.get_peft_model(model, LoraConfig(...))``, PEFT's own LoRA.
* ``minimal_lora``: :class:`~hora.experiments.bench.variants.MinimalLoRA`, ~20 lines,
  ``base(x) + x A^T B^T s``: the cost floor of a LoRA.
* ``hora`` / ``hora_joint``: ``peft.get_peft_model(model, HoraConfig(...))`` with the default (MLP) or the
  joint generator.

Measured: training step time (forward + backward + AdamW step), peak memory of a training step, the
number of generator products per step (and how often the factors are generated), eval forward time
(unmerged with cached factors, merged against the bare base model) and, optionally, graph breaks of
``torch.compile`` inside HoRA code. ``python benchmarks/bench_cpu.py`` (or ``hora bench``) runs the CPU
suite; ``benchmarks/bench_gpu.py`` the GPU one.

Modules, one job each:
    workloads       the model shapes, their inputs and losses (BERT/MiniLM, Llama-3.2-1B, ViT-B/16)
    variants        the compared adapters on a workload (and the minimal LoRA), a trainer per variant
    timing          interleaved, synchronised timing: median/min/max seconds per variant
    memory          peak bytes of a training step (CUDA allocator, or a dispatch-mode tracker on CPU)
    generation      how often HoRA's banks generate and the ops of a generation, through forward hooks
    compile_report  graph breaks of ``torch._dynamo.explain``, attributed to HoRA's core modules
    result          the record of one run and its human-readable table
    suite           one workload measured end to end; the CPU and GPU suites
    gpu_check       the GPU acceptance check: the GPU-relevant test selections and the GPU suite, one report
"""
