"""Specifications of models, accelerators and links, and the catalog that loads them."""

from simulator.specs.catalog import (
    clear_cache,
    gpu_catalog_entry,
    list_gpus,
    list_links,
    list_models,
    load_gpu,
    load_link,
    load_model,
    specs_dir,
)
from simulator.specs.dtypes import DTYPE_BYTES, canonical_dtype, dtype_bytes
from simulator.specs.gpu import GpuSpec
from simulator.specs.hf_config import SUPPORTED_MODEL_TYPES, model_spec_from_hf_config
from simulator.specs.link import LinkSpec
from simulator.specs.model import ModelSpec

__all__ = [
    "DTYPE_BYTES",
    "SUPPORTED_MODEL_TYPES",
    "GpuSpec",
    "LinkSpec",
    "ModelSpec",
    "canonical_dtype",
    "clear_cache",
    "dtype_bytes",
    "gpu_catalog_entry",
    "list_gpus",
    "list_links",
    "list_models",
    "load_gpu",
    "load_link",
    "load_model",
    "model_spec_from_hf_config",
    "specs_dir",
]
