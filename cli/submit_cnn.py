"""``kiln submit cnn DATASET``: an image classifier job, its options generated from CnnParams."""
from __future__ import annotations

import click

from cli.submit import default_name, follow_options, job_options, report_submitted


def _augment_list(value: str) -> list[str]:
    """``shift,flip`` -> ["shift", "flip"]; ``none`` (or empty) -> [] (no augmentation)."""
    parts = [a.strip() for a in value.split(",") if a.strip()]
    return [] if parts in ([], ["none"]) else parts


def cnn() -> click.Command:
    from cli.spec_options import spec_data, spec_options, with_options  # noqa: PLC0415
    from shared.cnn_params import CnnParams  # noqa: PLC0415

    options = spec_options(CnnParams, "params", exclude={"dataset"}) + job_options()

    @click.command("cnn")
    @click.argument("dataset")
    @click.option("--name", help="registered model name (default: cnn-<dataset's stem>)")
    @with_options(options)
    @follow_options
    def cnn_command(dataset, name, follow, as_json, **values) -> None:
        """Train an image classifier on DATASET: MNIST-style IDX files (or their folder), CIFAR-10/100 binary
        batches, an image folder (one sub-folder per class), an .npz with x and y, or `digits`.

        Unset hyperparameters take the architecture's recipe (LeNet-5 for grayscale images, ResNet-20 for
        colour); --augment takes a comma list (shift,affine,crop,flip or none). Without --test (or a test split in
        the dataset), --val-split of the images is held out and gives the test metrics."""
        from cli.context import job_service, job_writer  # noqa: PLC0415

        if values.get("augment") is not None:
            values["augment"] = _augment_list(values["augment"])
        data = spec_data(options, values)
        data["kind"], data["name"] = "cnn", name or default_name("cnn", dataset)
        data.setdefault("params", {})["dataset"] = dataset
        remote = job_writer(local=False)  # a server (KILN_URL, or the stack's) validates and stores
        if remote is None or not remote.server.explicit:
            # the files are this machine's (no server, or the embedded stack's): check them before anything
            # starts and say what the dataset holds; a remote server's files are checked on its side
            spec = _found(data, as_json)
        if remote is not None:
            report_submitted(remote, remote.submit(data, flags=True), follow=follow, as_json=as_json)
            return
        svc = job_service(start_stack=True)
        report_submitted(svc, svc.submit(spec), follow=follow, as_json=as_json)

    return cnn_command


def _found(data: dict, as_json: bool):
    """The checked spec of ``data``; "dataset: what was found" on stderr (not with --json)."""
    from services.vision import validate_cnn  # noqa: PLC0415
    from shared.config import get_settings  # noqa: PLC0415

    spec, found = validate_cnn(data, user=get_settings().user, flags=True)
    if not as_json:
        click.echo(found, err=True)
    return spec
