"""What clfkit's artifacts are: the ONNX metadata codec (:mod:`~clfkit.artifacts.onnx_meta`, torch-free), the
checks on an ONNX file before a runtime opens it (:mod:`~clfkit.artifacts.onnx_file`, torch-free) and the
checkpoint format with its safe loader (:mod:`~clfkit.artifacts.checkpoint`, torch)."""
