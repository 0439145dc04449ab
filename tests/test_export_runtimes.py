"""The onnxruntime session options every exported-file check and sampler uses."""

import pathlib
import re

import onnxruntime

from keras_vae.export import runtimes

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_session_options_carry_the_measured_settings():
    options = runtimes.session_options()
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    assert options.intra_op_num_threads == 0 and options.inter_op_num_threads == 1
    assert runtimes.session_options(intra_op_num_threads=3).intra_op_num_threads == 3


def test_the_node_and_browser_samplers_use_the_same_settings():
    node = (ROOT / "serving" / "node" / "sample.mjs").read_text()
    block = re.search(r"SESSION_OPTIONS = Object\.freeze\(\{(.*?)\}\)", node, re.S).group(1)
    assert "graphOptimizationLevel: 'all'" in block and "executionMode: 'sequential'" in block
    assert "intraOpNumThreads: 0" in block and "interOpNumThreads: 1" in block
    assert "{ ...SESSION_OPTIONS });" in node
    web = (ROOT / "serving" / "web" / "app.js").read_text()
    assert web.count("InferenceSession.create(bytes, { ...SESSION_OPTIONS })") == 2
    assert "graphOptimizationLevel: 'all'" in web and "numThreads = 1" in web
