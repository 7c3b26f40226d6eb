"""Batch synthetic-data augmentation: plan a job, generate it in resumable chunks, write datasets.

Torch-free (ONNX Runtime or HTTP + numpy + Pillow) so it runs inside the serving container.
`augment.job.run_job` runs one job (or one shard of it); `augment.merge.merge_outputs`
joins shard outputs into one dataset byte-identical to what a single machine writes. Kept
import-free so `gan --help` stays quick.
"""
