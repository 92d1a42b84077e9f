"""The studio: a web page for making and editing sounds, served at `/` by `soundsmith serve` (docs/studio.md).

Plain HTML, CSS and JavaScript modules — no build step, no CDN: every file the page loads is in this folder
(wavesurfer.js and its spectrogram and regions plugins are vendored under vendor/, licence in vendor/README.md).
The page talks only to the service's /v1 API, so it needs nothing from Python beyond these files being served:

    from soundsmith import studio
    studio.mount(app)        # GET / → index.html, GET /studio/… → the page's files
"""

from pathlib import Path

FOLDER = Path(__file__).parent
INDEX = FOLDER / "index.html"
PREFIX = "/studio"
SERVED = (".html", ".css", ".js", "LICENSE", "README.md")  # what the page's folder serves (not its Python)


def mount(app) -> None:
    """Serve the page on a FastAPI / Starlette `app`: `/` answers index.html, `/studio/{path}` the files of this
    folder that the page loads (Starlette's StaticFiles: no path outside the folder, range requests, ETags)."""
    from fastapi import HTTPException
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    class PageFiles(StaticFiles):
        async def get_response(self, path, scope):
            if not path.endswith(SERVED):
                raise HTTPException(status_code=404, detail="Not Found")
            return await super().get_response(path, scope)

    @app.get("/", include_in_schema=False)
    def studio_page():
        return FileResponse(INDEX, media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount(PREFIX, PageFiles(directory=FOLDER), name="studio")
