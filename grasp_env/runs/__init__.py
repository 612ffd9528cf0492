"""What the runners share.

Run directories and TensorBoard logging (`dirs`), crash-safe checkpoints (`checkpoint`) and the
experiment flags with their error exit (`cli`).
"""
