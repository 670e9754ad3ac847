"""Scripts that pretrain the course's shipped checkpoints, so they can be rebuilt and never drift.

    python -m course_lib.pretrain gpt  --help
    python -m course_lib.pretrain bert --help

Each model's recipe is a submodule (``course_lib.pretrain.gpt``, ``course_lib.pretrain.bert``) with
a ``main(argv)`` that trains with ``course_lib.train.Trainer`` and writes a safetensors checkpoint,
its config and its tokenizer under ``assets/``.
"""
