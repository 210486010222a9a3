# bubble-manager configuration of the chart (hub and service read it; see docs/configuration.md).
# The database URL is a secret: it is read from a file, never written into a ConfigMap. Settings
# come from the chart values (values.json beside this file), and the service Service's cluster IP
# from the variables Kubernetes gives the pod (<SERVICE>_SERVICE_HOST): extract-fill Jobs have no
# DNS, they download from the service by IP.
import json
import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

CONFIG_DIR = Path(os.environ.get("BUBBLE_MANAGER_CONFIG_DIR", "/etc/bubble-manager/config"))
SECRETS_DIR = Path(os.environ.get("BUBBLE_MANAGER_SECRETS_DIR", "/etc/bubble-manager/secrets"))
values = json.loads((CONFIG_DIR / "values.json").read_text())
c.BubbleManager.db_url = (SECRETS_DIR / "database-url").read_text().strip()
if values["warehousePath"]:  # warehouse.existingClaim, mounted read-only in the service pod (the catalog beside it)
    c.BubbleManager.warehouse_path = values["warehousePath"]

# --- extract volumes: the service fills them with a Job per study (docs/kubernetes.md) ---
jobs = c.KubeStudyJobs
jobs.enabled = True
jobs.namespace = values["bubbles"]["namespace"]
jobs.release_namespace = values["namespace"]
jobs.hub_pod_labels = values["hubPodLabels"]
jobs.proxy_pod_labels = values["proxyPodLabels"]
jobs.service_pod_labels = values["servicePodLabels"]
jobs.service_port = values["servicePort"]
service_ip = os.environ.get(values["serviceServiceEnv"] + "_SERVICE_HOST", "")
if service_ip:  # absent only in a pod started before the service's Service existed: the fill names the fix
    jobs.service_url = f"http://{service_ip}:{values['servicePort']}{values['servicePrefix']}"
jobs.image = values["bubbles"]["image"]
jobs.image_pull_policy = values["bubbles"]["pullPolicy"]
jobs.uid = values["bubbles"]["uid"]
jobs.gid = values["bubbles"]["gid"]
jobs.service_account = values["bubbles"]["serviceAccount"]
jobs.extract_mode = values["bubbles"]["extractMode"]
jobs.extract_storage_class = values["bubbles"]["storage"]["extractClass"] or None
jobs.extract_size = values["bubbles"]["storage"]["extractSize"]
jobs.extra_labels = values["bubbleLabels"]
