#!/usr/bin/env python3
"""A kubelet stand-in for the lab cluster (scripts/kube-lab.sh): runs the pods bound to the lab's
nodes for real, as processes of the node, and reports their status to the API server.

For each pod on one of --node NODE=NETNS=IP it starts the (single, or first) container's
command + args (the image is ignored; a command named in --bin NAME=PATH runs PATH, and those
names are on the pod's PATH too) inside the node's network namespace, in a mount namespace of
its own where:
  - the pod's projected ServiceAccount volume is a real one: a token from TokenRequest bound to
    the pod, the cluster CA and the namespace, at the volumeMount's path
    (/var/run/secrets/kubernetes.io/serviceaccount);
  - Secret and ConfigMap volumes hold their keys, emptyDir volumes are empty directories;
with the container's environment (value, fieldRef of the downward API, secretKeyRef,
configMapKeyRef), KUBERNETES_SERVICE_HOST/PORT pointing at the API server's lab address (the
`kubernetes` Service's ClusterIP has no proxy behind it), and the pod's runAsUser/runAsGroup/
fsGroup. tcpSocket readiness probes are really probed. The process's end is the pod's end
(Succeeded or Failed, with the exit code) under restartPolicy Never, and a restart otherwise.
A pod being deleted gets SIGTERM, SIGKILL after its grace period, and is then removed.
A node given --pod-network NODE=NETNS=IP[,IP] has a pod network: its pods that are not
hostNetwork run in NETNS and report IP(s) as their podIPs (hostIPs stay the node's), and the
file STATE/exec-netns/<namespace>_<pod> names NETNS, so that the node's (patched) kwok runs
pods/exec commands of the pod there too. Without it every pod is in the node's namespace.
Logs: LOGDIR/<namespace>_<pod>.log. Standard library only.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# In the pod's mount namespace: bind each SOURCE onto its TARGET, then become the command.
MOUNT_SCRIPT = """set -e
while [ "$1" != -- ]; do mount --bind "$1" "$2"; shift 2; done
shift
exec "$@"
"""


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


class Api:
    def __init__(self, server, ca, cert, key):
        self.server = server.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)

    def request(self, method, path, body=None, content_type="application/json"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, context=self.ctx, timeout=15) as resp:
            return json.loads(resp.read() or b"{}")

    def get(self, path):
        return self.request("GET", path)


class Pod:
    def __init__(self, obj, node):
        self.obj = obj
        self.node = node
        self.uid = obj["metadata"]["uid"]
        self.ns = obj["metadata"]["namespace"]
        self.name = obj["metadata"]["name"]
        self.proc = None
        self.restarts = 0
        self.ready = False
        self.started_at = None
        self.done = False
        self.term_sent = None
        self.restart_at = None
        self.next_probe = 0.0
        self.last_exit = None


class Kubelet:
    def __init__(self, args):
        self.api = Api(args.server, args.ca, args.cert, args.key)
        self.ca = args.ca
        self.api_host = args.api_host
        self.api_port = args.api_port
        self.state = args.state
        self.logdir = args.log_dir
        self.nodes = {}
        # NAME=NETNS=IP[,IP]: the node's addresses, the primary (IPv4) first.
        self.node_ips = {}
        for spec in args.node:
            name, netns, ips = spec.split("=")
            self.nodes[name] = (netns, ips.split(",")[0])
            self.node_ips[name] = ips.split(",")
        # NAME=NETNS=IP[,IP]: where the node's pods that are not hostNetwork live.
        self.pod_networks = {}
        for spec in args.pod_network:
            name, netns, ips = spec.split("=")
            self.pod_networks[name] = (netns, ips.split(","))
        self.exec_netns_dir = os.path.join(self.state, "exec-netns")
        os.makedirs(self.exec_netns_dir, exist_ok=True)
        self.bindir = os.path.join(self.state, "bin")
        os.makedirs(self.bindir, exist_ok=True)
        os.chmod(self.bindir, 0o755)
        self.bins = {}
        for spec in args.bin:
            name, path = spec.split("=", 1)
            # A copy every pod user can run, whatever the permissions of the path's parents.
            target = os.path.join(self.bindir, name)
            shutil.copy(path, target + ".tmp")
            os.chmod(target + ".tmp", 0o755)
            os.replace(target + ".tmp", target)
            self.bins[name] = target
        self.pods = {}
        self.stopping = False
        self.created_dirs_file = os.path.join(self.state, "created-mount-points")

    # --- volumes -----------------------------------------------------------------------------
    def mount_point(self, path):
        """The mount point must exist on this machine; make it and note it for kube-lab.sh down."""
        if os.path.isdir(path):
            return
        missing = []
        p = path
        while not os.path.exists(p):
            missing.append(p)
            p = os.path.dirname(p)
        os.makedirs(path, mode=0o755)
        with open(self.created_dirs_file, "a") as f:
            for m in missing:
                f.write(m + "\n")

    def secret_data(self, ns, name):
        obj = self.api.get(f"/api/v1/namespaces/{ns}/secrets/{urllib.parse.quote(name)}")
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}

    def configmap_data(self, ns, name):
        obj = self.api.get(f"/api/v1/namespaces/{ns}/configmaps/{urllib.parse.quote(name)}")
        return {k: v.encode() for k, v in (obj.get("data") or {}).items()}

    def token(self, pod, sa, expiration, audience=None):
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": expiration,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid},
            },
        }
        if audience:
            body["spec"]["audiences"] = [audience]
        resp = self.api.request("POST", f"/api/v1/namespaces/{pod.ns}/serviceaccounts/{sa}/token", body)
        return resp["status"]["token"].encode()

    def write_files(self, directory, files, items, mode, uid, gid):
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
        chosen = {}
        if items:
            for item in items:
                if item["key"] in files:
                    chosen[item.get("path", item["key"])] = (files[item["key"]], item.get("mode", mode))
        else:
            chosen = {k: (v, mode) for k, v in files.items()}
        for rel, (data, m) in chosen.items():
            path = os.path.join(directory, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, m)
            os.chown(path, uid, gid)

    def volumes(self, pod, poddir, uid, gid):
        spec = pod.obj["spec"]
        sa = spec.get("serviceAccountName", "default")
        result = {}
        for vol in spec.get("volumes") or []:
            d = os.path.join(poddir, "volumes", vol["name"])
            fs_gid = gid
            if "emptyDir" in vol:
                os.makedirs(d, exist_ok=True)
                os.chmod(d, 0o1777)
            elif "secret" in vol:
                s = vol["secret"]
                self.write_files(d, self.secret_data(pod.ns, s["secretName"]), s.get("items"),
                                 s.get("defaultMode", 0o644), 0, fs_gid)
            elif "configMap" in vol:
                c = vol["configMap"]
                self.write_files(d, self.configmap_data(pod.ns, c["name"]), c.get("items"),
                                 c.get("defaultMode", 0o644), 0, fs_gid)
            elif "projected" in vol:
                p = vol["projected"]
                mode = p.get("defaultMode", 0o644)
                for source in p.get("sources") or []:
                    if "serviceAccountToken" in source:
                        t = source["serviceAccountToken"]
                        data = self.token(pod, sa, t.get("expirationSeconds", 3607), t.get("audience"))
                        self.write_files(d, {"token": data}, None, 0o640, 0, fs_gid)
                    elif "configMap" in source:
                        c = source["configMap"]
                        self.write_files(d, self.configmap_data(pod.ns, c["name"]), c.get("items"), mode, 0, fs_gid)
                    elif "secret" in source:
                        s = source["secret"]
                        self.write_files(d, self.secret_data(pod.ns, s["name"]), s.get("items"), mode, 0, fs_gid)
                    elif "downwardAPI" in source:
                        files = {}
                        for item in source["downwardAPI"].get("items") or []:
                            files[item["path"]] = self.field(pod, item["fieldRef"]["fieldPath"]).encode()
                        self.write_files(d, files, None, mode, 0, fs_gid)
            else:
                raise RuntimeError(f"volume {vol['name']}: only emptyDir, secret, configMap and projected")
            result[vol["name"]] = d
        return result

    def place(self, pod):
        """(network namespace, podIPs) of the pod: its node's, or its node's pod network's."""
        if not pod.obj["spec"].get("hostNetwork") and pod.node in self.pod_networks:
            return self.pod_networks[pod.node]
        return self.nodes[pod.node][0], self.node_ips[pod.node]

    def exec_netns_file(self, pod):
        return os.path.join(self.exec_netns_dir, f"{pod.ns}_{pod.name}")

    # --- environment -------------------------------------------------------------------------
    def field(self, pod, path):
        meta, spec = pod.obj["metadata"], pod.obj["spec"]
        netns_ip = self.nodes[pod.node][1]
        pod_ip = self.place(pod)[1][0]
        values = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.hostIP": netns_ip,
            "status.podIP": pod_ip,
        }
        if path in values:
            return values[path]
        for prefix, src in (("metadata.labels['", meta.get("labels") or {}),
                            ("metadata.annotations['", meta.get("annotations") or {})):
            if path.startswith(prefix):
                return src.get(path[len(prefix):-2], "")
        raise RuntimeError(f"fieldRef {path} not supported")

    def env(self, pod, container):
        env = {
            "PATH": self.bindir + ":" + DEFAULT_PATH,
            "HOSTNAME": pod.node if pod.obj["spec"].get("hostNetwork") else pod.name,
            "HOME": "/",
            "KUBERNETES_SERVICE_HOST": self.api_host,
            "KUBERNETES_SERVICE_PORT": str(self.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.api_port),
            "KUBERNETES_PORT": f"tcp://{self.api_host}:{self.api_port}",
        }
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = e["value"]
                continue
            src = e.get("valueFrom") or {}
            if "fieldRef" in src:
                env[e["name"]] = self.field(pod, src["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in src:
                ref = src["secretKeyRef"]
                env[e["name"]] = self.secret_data(pod.ns, ref["name"])[ref["key"]].decode()
            elif "configMapKeyRef" in src:
                ref = src["configMapKeyRef"]
                env[e["name"]] = self.configmap_data(pod.ns, ref["name"])[ref["key"]].decode()
            elif "resourceFieldRef" in src:
                env[e["name"]] = "0"
        return env

    # --- processes ---------------------------------------------------------------------------
    def start(self, pod):
        spec = pod.obj["spec"]
        container = spec["containers"][0]
        netns, _ = self.place(pod)
        if netns != self.nodes[pod.node][0]:
            with open(self.exec_netns_file(pod), "w") as f:
                f.write(netns + "\n")
        psc = spec.get("securityContext") or {}
        csc = container.get("securityContext") or {}
        uid = csc.get("runAsUser", psc.get("runAsUser", 0))
        gid = csc.get("runAsGroup", psc.get("runAsGroup", 0))
        fs_group = psc.get("fsGroup")
        poddir = os.path.join(self.state, "pods", pod.uid)
        os.makedirs(poddir, exist_ok=True)
        os.chmod(poddir, 0o711)
        vols = self.volumes(pod, poddir, uid, fs_group if fs_group is not None else gid)
        mounts = []
        for vm in container.get("volumeMounts") or []:
            self.mount_point(vm["mountPath"])
            mounts += [vols[vm["name"]], vm["mountPath"]]
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not argv:
            raise RuntimeError("no command: the image's entrypoint is unknown here")
        argv[0] = self.bins.get(argv[0], argv[0])
        env = self.env(pod, container)
        groups = "--clear-groups" if fs_group is None else f"--groups={fs_group}"
        cmd = ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", "--",
               "sh", "-c", MOUNT_SCRIPT, "sh", *mounts, "--",
               "setpriv", f"--reuid={uid}", f"--regid={gid}", groups, "--",
               "env", "-i", *[f"{k}={v}" for k, v in env.items()], *argv]
        logpath = os.path.join(self.logdir, f"{pod.ns}_{pod.name}.log")
        out = open(logpath, "ab")
        out.write(f"--- {now()} start (uid {uid}) in {netns}: {json.dumps(argv)}\n".encode())
        out.flush()
        wd = container.get("workingDir") or "/"
        pod.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=wd, start_new_session=True)
        out.close()
        with open(os.path.join(poddir, "pid"), "w") as f:
            f.write(str(pod.proc.pid))
        pod.started_at = now()
        pod.ready = not container.get("readinessProbe")
        log(f"started {pod.ns}/{pod.name} on {pod.node}: pid {pod.proc.pid}: {' '.join(argv)}")

    def probe(self, pod):
        container = pod.obj["spec"]["containers"][0]
        probe = container.get("readinessProbe") or {}
        tcp = probe.get("tcpSocket")
        if not tcp:
            return True
        port = tcp["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port)
        try:
            with socket.create_connection((self.place(pod)[1][0], port), timeout=1):
                return True
        except OSError:
            return False

    def patch_status(self, pod, status):
        path = f"/api/v1/namespaces/{pod.ns}/pods/{pod.name}/status"
        try:
            self.api.request("PATCH", path, {"metadata": {"uid": pod.uid}, "status": status},
                             "application/strategic-merge-patch+json")
        except urllib.error.HTTPError as e:
            if e.code not in (404, 409):
                log(f"status of {pod.ns}/{pod.name}: {e.code} {e.read()[:300]!r}")

    def running_status(self, pod):
        container = pod.obj["spec"]["containers"][0]
        ip = self.nodes[pod.node][1]
        # As a dual-stack kubelet reports a hostNetwork pod: every address of its node.
        host_ips = [{"ip": a} for a in self.node_ips[pod.node]]
        ips = [{"ip": a} for a in self.place(pod)[1]]
        t = now()
        ready = "True" if pod.ready else "False"
        cs = {"name": container["name"], "image": container.get("image", ""), "imageID": "",
              "containerID": f"lab://{pod.proc.pid}", "ready": pod.ready, "started": True,
              "restartCount": pod.restarts, "state": {"running": {"startedAt": pod.started_at}}}
        if pod.last_exit is not None:
            cs["lastState"] = {"terminated": {"exitCode": pod.last_exit, "finishedAt": t}}
        return {
            "phase": "Running", "hostIP": ip, "hostIPs": host_ips, "podIP": ips[0]["ip"], "podIPs": ips,
            "startTime": pod.obj["status"].get("startTime", pod.started_at),
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": t},
                {"type": "Ready", "status": ready, "lastTransitionTime": t},
            ],
            "containerStatuses": [cs],
        }

    def finish(self, pod, code):
        container = pod.obj["spec"]["containers"][0]
        t = now()
        phase = "Succeeded" if code == 0 else "Failed"
        reason = "Completed" if code == 0 else "Error"
        self.patch_status(pod, {
            "phase": phase,
            "conditions": [
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": t},
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": t},
            ],
            "containerStatuses": [{
                "name": container["name"], "image": container.get("image", ""), "imageID": "",
                "containerID": f"lab://{pod.proc.pid}", "ready": False, "started": False,
                "restartCount": pod.restarts,
                "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": pod.started_at,
                                         "finishedAt": t, "containerID": f"lab://{pod.proc.pid}"}},
            }],
        })
        log(f"{pod.ns}/{pod.name}: exit {code} -> {phase}")

    def kill(self, pod, sig):
        if pod.proc and pod.proc.poll() is None:
            try:
                os.killpg(pod.proc.pid, sig)
            except ProcessLookupError:
                pass

    def fail_start(self, pod, error):
        log(f"{pod.ns}/{pod.name}: cannot start: {error}")
        pod.done = True
        self.patch_status(pod, {"phase": "Failed", "reason": "LabStartError", "message": str(error)[:500]})

    # --- the loop ----------------------------------------------------------------------------
    def sync(self):
        seen = set()
        for node in self.nodes:
            sel = urllib.parse.quote(f"spec.nodeName={node}")
            for obj in self.api.get(f"/api/v1/pods?fieldSelector={sel}")["items"]:
                uid = obj["metadata"]["uid"]
                seen.add(uid)
                pod = self.pods.get(uid)
                if pod is None:
                    pod = self.pods[uid] = Pod(obj, node)
                    if obj["status"].get("phase") in ("Succeeded", "Failed"):
                        pod.done = True
                pod.obj = obj
                self.step(pod)
        for uid in list(self.pods):
            if uid not in seen:
                pod = self.pods.pop(uid)
                self.kill(pod, signal.SIGKILL)
                if os.path.exists(self.exec_netns_file(pod)):
                    os.remove(self.exec_netns_file(pod))
                shutil.rmtree(os.path.join(self.state, "pods", uid), ignore_errors=True)

    def step(self, pod):
        obj = pod.obj
        deleting = obj["metadata"].get("deletionTimestamp")
        running = pod.proc is not None and pod.proc.poll() is None
        if deleting:
            if running:
                if pod.term_sent is None:
                    pod.term_sent = time.monotonic()
                    self.kill(pod, signal.SIGTERM)
                elif time.monotonic() - pod.term_sent > min(obj["spec"].get("terminationGracePeriodSeconds", 30), 10):
                    self.kill(pod, signal.SIGKILL)
                return
            try:
                self.api.request("DELETE", f"/api/v1/namespaces/{pod.ns}/pods/{pod.name}",
                                 {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                  "preconditions": {"uid": pod.uid}})
            except urllib.error.HTTPError:
                pass
            return
        if pod.done:
            return
        if pod.proc is None or (pod.restart_at is not None and time.monotonic() >= pod.restart_at):
            pod.restart_at = None
            try:
                self.start(pod)
            except Exception as e:  # noqa: BLE001 - any failure to start is the pod's failure
                self.fail_start(pod, e)
                return
            self.patch_status(pod, self.running_status(pod))
            return
        if pod.restart_at is not None:
            return
        code = pod.proc.poll()
        if code is not None:
            if code < 0:
                code = 128 - code
            policy = obj["spec"].get("restartPolicy", "Always")
            if policy == "Always" or (policy == "OnFailure" and code != 0):
                pod.restarts += 1
                pod.last_exit = code
                pod.ready = False
                pod.restart_at = time.monotonic() + min(10, 2 ** pod.restarts)
                log(f"{pod.ns}/{pod.name}: exit {code}, restarting")
                return
            pod.done = True
            self.finish(pod, code)
            return
        if not pod.ready and time.monotonic() >= pod.next_probe:
            pod.next_probe = time.monotonic() + 0.5
            if self.probe(pod):
                pod.ready = True
                self.patch_status(pod, self.running_status(pod))
                return
        # As a kubelet's status manager: whatever else wrote the status (the node lifecycle
        # controller marks pods not Ready when their node's lease runs out), ours wins.
        conditions = {c["type"]: c["status"] for c in obj["status"].get("conditions") or []}
        if obj["status"].get("phase") != "Running" or conditions.get("Ready") != ("True" if pod.ready else "False"):
            self.patch_status(pod, self.running_status(pod))

    def run(self):
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stopping", True))
        log(f"watching pods on {', '.join(self.nodes)}")
        while not self.stopping:
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - the API server may be briefly away
                log(f"sync: {e}")
            time.sleep(0.3)
        for pod in self.pods.values():
            self.kill(pod, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for pod in self.pods.values():
            while pod.proc and pod.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            self.kill(pod, signal.SIGKILL)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--api-host", required=True)
    p.add_argument("--api-port", required=True, type=int)
    p.add_argument("--state", required=True)
    p.add_argument("--log-dir", required=True)
    p.add_argument("--node", action="append", default=[])
    p.add_argument("--pod-network", action="append", default=[])
    p.add_argument("--bin", action="append", default=[])
    Kubelet(p.parse_args()).run()


if __name__ == "__main__":
    main()
