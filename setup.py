from setuptools import find_packages, setup

setup(
    name="cyclegan_tf",
    version="0.1.0",
    description="CycleGAN for TensorFlow 2 / Keras 3: build_data -> train -> export_graph -> inference",
    packages=find_packages(include=["cyclegan_tf", "cyclegan_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorboard",  # TF 2.21 no longer installs it; tf.summary needs it
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets 4.9.10 imports it to download and prepare a set (build_data.py
        # --tfds) but does not declare it: without it every download fails.
        "importlib_resources",
        "numpy",
        "pillow>=10",
        "absl-py",
        "tqdm",  # progress bars (cyclegan_tf/progress.py)
        "requests",  # tells a failed TFDS download from other errors (cyclegan_tf/data.py)
    ],
    extras_require={
        # ONNX and LiteRT export (export_graph.py --formats) and their runtimes; tested together
        # with TF 2.21 (protobuf 7): tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0, litert 2.3.0.
        "export": ["tf2onnx==1.17.0", "onnx>=1.23", "onnxruntime>=1.32", "ai-edge-litert>=2.3"],
        # Faces: MTCNN, a face detector with five landmarks whose weights ship inside its wheel
        # (offline), also the offline feature network of evaluate.py --fid_network face.
        "faces": ["mtcnn==1.0.0"],
        # The tests run the export parity tests and the real detector, so CI needs both extras;
        # pytest-xdist runs them in two workers (README: Run the tests).
        "test": ["pytest", "pytest-xdist", "scipy", "tf2onnx==1.17.0", "onnx>=1.23", "onnxruntime>=1.32",
                 "ai-edge-litert>=2.3", "mtcnn==1.0.0"],
    },
)
