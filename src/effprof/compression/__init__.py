"""Compression: significance, structured pruning, recovery, quantisation (LightGaussian recipe).

Modules (imported on demand; onnxruntime and scikit-learn load only with ``quantize`` / ``vq``):

* ``untie``: give each ResBlock its own copy of MSSNet's shared PReLU (function unchanged);
* ``significance``: per-output-channel scores (``taylor``, ``magnitude``, ``magnitude-l1``,
  ``lamp``) in the ``SIGNIFICANCE`` registry, returned as a ``SignificanceTable``;
* ``cost``: convolution MACs per layer / per channel (compression's own estimate);
* ``prune``: Torch-Pruning groups ranked globally, removed to a MAC target in steps;
* ``recover``: fine-tune a pruned network by distilling from the dense one on fresh pseudo-views;
* ``reload``: save a pruned network as structure.json + weights.pt, reload without Torch-Pruning;
* ``quantize``: fp16/bf16 copies, per-layer INT8 sensitivity, ONNX Runtime static QDQ INT8, and
  ``OrtModel`` to run a written .onnx like a torch model;
* ``vq``: significance-aware k-means vector quantisation of weights into a compact .npz.
"""
