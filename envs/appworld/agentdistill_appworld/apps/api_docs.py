"""``api_docs``: what the apps are and how to call their APIs (parameters, types, defaults, responses)."""

from __future__ import annotations

from typing import Any

from agentdistill_appworld.framework import App, NotFound, api


class APIDocs(App):
    name = "api_docs"
    description = "Documentation of every app and API: start here."

    def _app(self, app_name: str) -> App:
        app = self.ctx.apps.get(app_name)
        if app is None:
            raise NotFound(f"no app named {app_name!r}; apps: {sorted(self.ctx.apps)}")
        return app

    @api("List the apps with a one-line description each.", login=False,
         response=[{"name": "string", "description": "string"}])
    def show_app_descriptions(self) -> list[dict[str, str]]:
        return [{"name": a.name, "description": a.description} for _, a in sorted(self.ctx.apps.items())]

    @api("List an app's APIs with a one-line description each.", login=False,
         response=[{"name": "string", "description": "string"}], app_name="The app, e.g. 'phone'.")
    def show_api_descriptions(self, app_name: str) -> list[dict[str, str]]:
        app = self._app(app_name)
        return [{"name": s.name, "description": s.description} for _, s in sorted(app.specs.items())]

    @api("Show one API's full documentation: parameters (type, required, default) and response schema.",
         login=False, response={"app_name": "string", "api_name": "string", "description": "string",
                                "parameters": "array", "response_schema": "any"},
         app_name="The app, e.g. 'phone'.", api_name="The API, e.g. 'search_contacts'.")
    def show_api_doc(self, app_name: str, api_name: str) -> dict[str, Any]:
        app = self._app(app_name)
        if api_name not in app.specs:
            raise NotFound(f"{app_name} has no API {api_name!r}; see show_api_descriptions(app_name='{app_name}')")
        return app.specs[api_name].as_doc()

    @api("Search the API descriptions for words of the query.", login=False,
         response=[{"app_name": "string", "api_name": "string", "description": "string"}],
         query="Words to look for, e.g. 'send money'.", app_name="Only search this app (null: all apps).")
    def search_api_docs(self, query: str, app_name: str | None = None) -> list[dict[str, str]]:
        words = [w for w in query.lower().split() if w]
        apps = [self._app(app_name)] if app_name else [a for _, a in sorted(self.ctx.apps.items())]
        hits = []
        for app in apps:
            for name, spec in sorted(app.specs.items()):
                text = f"{name.replace('_', ' ')} {spec.description}".lower()
                score = sum(w in text for w in words)
                if score:
                    hits.append((-score, app.name, name, spec.description))
        return [{"app_name": a, "api_name": n, "description": d} for _, a, n, d in sorted(hits)[:20]]
