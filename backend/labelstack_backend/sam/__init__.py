"""Interactive Segment Anything: a click or a box becomes a mask in milliseconds.

Small modules, one job each:

* :mod:`.model`       build or load SAM (vit_h/l/b, MobileSAM, a tiny test model); run the encoder
* :mod:`.prompts`     Label Studio's interactive context -> SAM prompts in pixels (pure)
* :mod:`.cache`       a byte-bounded, thread-safe, single-flight LRU with a pluggable second level
* :mod:`.embeddings`  the image embedding, its cache key, and the image -> embedding path
* :mod:`.decode`      stateless mask decoding from a cached embedding
* :mod:`.answer`      which tags a click fills, masks -> Label Studio regions (pure)
* :mod:`.precompute`  background precompute of a whole project's embeddings

``labelstack_backend.predictors.sam`` wires them into the backend's predictor protocol.
"""
