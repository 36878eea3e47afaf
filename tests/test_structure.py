"""Weight tags and the structure document, from real Keras models (no training)."""

import json

import numpy as np
import pytest

import keras_models as km
from tensorboard_nnviz.record import structure

EXPECTED_TAGS = {
    "mlp": ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias", "dense_2/kernel",
            "dense_2/bias"],
    "lstm": ["lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel", "lstm/lstm_cell/bias",
             "dense/kernel", "dense/bias"],
    "gru": ["gru/gru_cell/kernel", "gru/gru_cell/recurrent_kernel", "gru/gru_cell/bias",
            "dense/kernel", "dense/bias"],
    "mha": ["mha/query/kernel", "mha/query/bias", "mha/key/kernel", "mha/key/bias",
            "mha/value/kernel", "mha/value/bias", "mha/attention_output/kernel",
            "mha/attention_output/bias", "dense/kernel", "dense/bias"],
    "batchnorm": ["dense/kernel", "dense/bias", "bn/gamma", "bn/beta", "bn/moving_mean",
                  "bn/moving_variance", "dense_1/kernel", "dense_1/bias"],
    "nested": ["encoder/e1/kernel", "encoder/e1/bias", "encoder/e2/kernel", "encoder/e2/bias",
               "head/kernel", "head/bias"],
    "separable": ["sep/depthwise_kernel", "sep/pointwise_kernel", "sep/bias", "dense/kernel",
                  "dense/bias"],
    "embedding": ["emb/embeddings", "dense/kernel", "dense/bias"],
}


@pytest.mark.parametrize("family", sorted(EXPECTED_TAGS))
def test_tags_from_the_layer_tree(family):
    model, _ = km.build(family)
    refs = structure.weight_refs(model)
    assert [r.tag for r in refs] == EXPECTED_TAGS[family]
    assert {id(r.variable) for r in refs} == {id(v) for v in model.weights}


def test_layer_class_and_name_for_layouts():
    model, _ = km.build("mha")
    ref = {r.tag: r for r in structure.weight_refs(model)}["mha/query/kernel"]
    assert (ref.layer_class, ref.layer_name, tuple(ref.variable.shape)) == (
        "EinsumDense", "query", (6, 2, 3))
    model, _ = km.build("lstm")
    ref = {r.tag: r for r in structure.weight_refs(model)}["lstm/lstm_cell/kernel"]
    assert ref.layer_class == "LSTMCell"


def test_subclassed_model_tags_once_built():
    model, (x, _) = km.build("subclassed")
    assert structure.weight_refs(model) == []
    model(x[:2])
    assert [r.tag for r in structure.weight_refs(model)] == [
        "hidden/kernel", "hidden/bias", "out/kernel", "out/bias"]


def test_a_shared_layer_keeps_its_first_path():
    import keras

    shared = keras.layers.Dense(3, name="shared")
    enc1 = keras.Sequential([keras.Input((3,)), shared], name="enc1")
    enc2 = keras.Sequential([keras.Input((3,)), shared, keras.layers.Dense(3, name="own")],
                            name="enc2")
    x = keras.Input((3,))
    model = keras.Model(x, keras.layers.Add()([enc1(x), enc2(x)]), name="twice")
    tags = [r.tag for r in structure.weight_refs(model)]
    assert tags == ["enc1/shared/kernel", "enc1/shared/bias", "enc2/own/kernel", "enc2/own/bias"]
    doc = structure.build_structure(model)
    paths = [layer["path"] for layer in doc["layers"]]
    assert "enc2/shared" not in paths and "enc1/shared" in paths
    assert doc["model"]["params"] == 24


def test_structure_of_a_branching_functional_model():
    model, _ = km.build("branch_merge")
    doc = structure.build_structure(model)
    json.dumps(doc, allow_nan=False)
    layers = {layer["path"]: layer for layer in doc["layers"]}
    assert [layer["path"] for layer in doc["layers"]] == [
        "inp", "a", "b1", "b2", "add", "concat", "out"]
    assert layers["inp"]["inbound"] == [] and layers["inp"]["class"] == "InputLayer"
    assert layers["a"]["inbound"] == ["inp"]
    assert layers["add"]["inbound"] == ["b1", "b2"]
    assert layers["concat"]["inbound"] == ["a", "add"]
    assert layers["concat"]["output_shape"] == [None, 8]
    assert layers["out"]["params"] == 18 and layers["add"]["params"] == 0
    assert layers["b1"]["weights"] == [
        {"name": "kernel", "tag": "b1/kernel", "shape": [4, 4], "dtype": "float32", "trainable": True},
        {"name": "bias", "tag": "b1/bias", "shape": [4], "dtype": "float32", "trainable": True},
    ]


def test_structure_of_nested_and_sequential_models():
    model, _ = km.build("nested")
    doc = structure.build_structure(model)
    layers = {layer["path"]: layer for layer in doc["layers"]}
    assert list(layers) == ["inp", "encoder", "encoder/e1", "encoder/e2", "head"]
    assert layers["encoder"]["class"] == "Sequential" and layers["encoder"]["params"] == 39
    assert layers["encoder"]["inbound"] == ["inp"] and layers["head"]["inbound"] == ["encoder"]
    assert layers["encoder/e2"]["inbound"] == ["encoder/e1"]
    assert layers["encoder"]["weights"] == []  # its weights belong to e1, e2
    assert doc["model"] == {"name": "outer", "class": "Functional", "params": 47,
                            "trainable_params": 47}


def test_structure_counts_non_trainable_weights():
    model, _ = km.build("batchnorm")
    doc = structure.build_structure(model)
    assert doc["model"]["params"] == 50 and doc["model"]["trainable_params"] == 42
    bn = [layer for layer in doc["layers"] if layer["path"] == "bn"][0]
    assert [w["name"] for w in bn["weights"]] == ["gamma", "beta", "moving_mean",
                                                  "moving_variance"]
    assert bn["inbound"] == ["dense"]
    # What the optimizer trains: not BatchNorm's moving statistics.
    assert [w["trainable"] for w in bn["weights"]] == [True, True, False, False]
    model.layers[0].trainable = False
    doc = structure.build_structure(model)
    assert doc["layers"][0]["trainable"] is False
    assert [w["trainable"] for w in doc["layers"][0]["weights"]] == [False, False]


def test_a_frozen_nested_model_freezes_the_weights_inside():
    import keras

    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")], name="inner")
    inner.trainable = False
    outer = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(1, name="head")],
                             name="outer")
    weights = {w["tag"]: w["trainable"] for layer in structure.build_structure(outer)["layers"]
               for w in layer["weights"]}
    assert weights == {"inner/d/kernel": False, "inner/d/bias": False,
                       "head/kernel": True, "head/bias": True}


def test_sublayers_of_ordinary_layers_are_listed_under_their_parent():
    model, _ = km.build("lstm")
    doc = structure.build_structure(model)
    paths = [layer["path"] for layer in doc["layers"]]
    assert paths == ["lstm", "lstm/lstm_cell", "dense"]
    cell = doc["layers"][1]
    assert cell["class"] == "LSTMCell" and cell["inbound"] == []
    assert doc["layers"][0]["weights"] == []  # the LSTM's weights are its cell's


def test_signature_changes_with_the_weights():
    model, _ = km.build("mlp")
    a = structure.signature(structure.weight_refs(model))
    model.layers[0].kernel.assign(np.zeros((5, 8), "float32"))  # values don't matter
    assert structure.signature(structure.weight_refs(model)) == a
    model2, _ = km.build("mlp")
    assert structure.signature(structure.weight_refs(model2)) != a


def test_a_weight_of_the_model_itself_is_tagged_by_its_name():
    import keras

    class Scaled(keras.Model):
        def __init__(self):
            super().__init__(name="scaled")
            self.dense = keras.layers.Dense(2, name="dense")

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale")
            self.dense.build(input_shape)

        def call(self, x):
            return self.dense(x) * self.scale

    model = Scaled()
    model.build((None, 3))
    assert [r.tag for r in structure.weight_refs(model)] == ["dense/kernel", "dense/bias",
                                                             "scale"]
