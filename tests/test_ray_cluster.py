"""ray_cluster.yaml (and the on-premises variant) pass the Ray cluster launcher's own
config preparation and schema validation, exactly what `ray up` runs first."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
FILES = ["ray_cluster.yaml", "ray_cluster.local.yaml"]


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", FILES)
def test_cluster_config_passes_the_launchers_validation(name):
    config = prepare_config(_load(name))
    validate_config(config)  # raises jsonschema.ValidationError / ValueError on a defect
    assert config["head_node_type"] in config["available_node_types"]


def test_a_typo_fails_the_same_validation():
    config = _load("ray_cluster.yaml")
    config["max_wrokers"] = 4
    with pytest.raises(jsonschema.ValidationError, match="max_wrokers"):
        validate_config(prepare_config(copy.deepcopy(config)))


def test_aws_cluster_has_cpu_head_and_gpu_workers_and_starts_mlflow():
    config = _load("ray_cluster.yaml")
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}  # no trials on the head
    gpu = config["available_node_types"]["worker.gpu"]
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1 and gpu["node_config"]["InstanceType"].startswith("g")
    head_start = " ".join(config["head_start_ray_commands"])
    assert "mlflow server" in head_start and "--artifacts-destination" in head_start
    assert any("make setup" in c for c in config["setup_commands"])


@pytest.mark.parametrize("name", FILES)
def test_no_secrets_and_services_bound_to_localhost(name):
    text = (ROOT / name).read_text()
    assert not re.search(r"(?i)(secret|password|aws_access_key|token)\s*[:=]", text)
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)  # an AWS access key id
    assert "--dashboard-host=127.0.0.1" in text
    assert "--host 127.0.0.1" in text and "0.0.0.0" not in text
