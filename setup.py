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
        "numpy",
        "pillow>=10",
        "absl-py",
    ],
    extras_require={"test": ["pytest", "scipy"]},
)
