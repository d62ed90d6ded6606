"""`pyro-cvae serve`: a local web page to paint a hole and see the completions."""

from __future__ import annotations

import click

from .app import cli, load_run
from .params import IMAGES_HELP, device_option

APP_EXTRA = "pip install 'pyro-cvae[app]' (in a clone: pip install -e '.[app]')"


@cli.command("serve")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; another than 127.0.0.1 lets other machines in.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=7860,
    show_default=True,
    help="The port (0: any free one; the address printed says which).",
)
@click.option(
    "--examples",
    "examples_path",
    type=click.Path(exists=True),
    help="Pictures to pick from on the page (the first 100). "
    + IMAGES_HELP
    + " [default: the run's test images; none for a folder run]",
)
@device_option("cpu")
def serve(run_dir, host, port, examples_path, device):
    """Serve a web page for the run in RUN_DIR: fill a painted hole, generate, name a picture.

    One request is answered at a time. It reads RUN_DIR, --examples (or the run's test
    images: MNIST, Fashion-MNIST or CIFAR-10) and its own page, and writes no file.
    """
    try:
        import uvicorn

        from pyro_cvae.webapp import create_app
    except ImportError as error:
        raise click.ClickException(
            f"serve needs the web app's packages ({error.name} is missing): {APP_EXTRA}"
        ) from None
    import socket

    from pyro_cvae.errors import DataError, UsageError
    from pyro_cvae.images import read_images
    from pyro_cvae.served_run import ServedRun, check_examples, run_examples
    from pyro_cvae.webapp import allowed_hosts

    try:  # first, so that a port in use is said before the model is loaded
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family)
    except OSError as error:
        raise UsageError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    with listener:
        run = load_run(run_dir, device)
        if examples_path is not None:
            examples = check_examples(read_images(examples_path), run.config.image_shape)
        else:
            try:
                examples = run_examples(run)
            except DataError as error:
                examples = None
                click.echo(f"no test images to pick from ({error}); upload pictures instead")
        served = ServedRun(run, examples)
        served.warm_up()
        shown_host = f"[{host}]" if ":" in host else host
        address = f"http://{shown_host}:{listener.getsockname()[1]}/"
        click.echo(f"serving {run_dir} at {address} (Ctrl-C stops)")
        app = create_app(served, allowed_hosts(host))
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[listener])
