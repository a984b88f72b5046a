//! The API reference page at `/docs`: Swagger UI over `/openapi.json`.
//!
//! The page and its scripts are the Swagger UI distribution that the
//! `vendored` build of `utoipa-swagger-ui` ships inside the crate, so
//! nothing is fetched when the service is built or when the page is
//! opened: every file the page loads comes from this service. The page is
//! set up so that a reader can try the routes from the browser: "Authorize"
//! takes a bearer token (for example one printed by `--dev`), which the page
//! keeps across reloads, and "Try it out" is on. The online validator that
//! Swagger UI would otherwise call is turned off.

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa_swagger_ui::Config;

use crate::problem::Problem;
use crate::spec::routes;

/// The path under which the page's own files (scripts, styles, icons) are
/// served. They are parts of the page, not operations of the API, so the
/// OpenAPI document does not list them.
pub const FILES_PATH: &str = "/docs/{file}";

/// The Swagger UI file that is the page itself.
const INDEX_FILE: &str = "index.html";

/// How Swagger UI is set up: which document it reads and how it behaves.
static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::new([routes::openapi().path])
            .persist_authorization(true)
            .try_it_out_enabled(true)
            .validator_url("none"),
    )
});

/// The page, with a base address so that the relative addresses of its
/// files resolve under `/docs/` although the page itself is `/docs`.
pub fn page() -> Response {
    match file(INDEX_FILE) {
        Ok((content_type, bytes)) => {
            let html = String::from_utf8_lossy(&bytes);
            let base = format!("<head>\n    <base href=\"{}/\">", routes::docs().path);
            (content_type, html.replacen("<head>", &base, 1)).into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// One of the page's files, by name.
pub async fn page_file(Path(name): Path<String>) -> Response {
    // The page itself is only served at `/docs`, where its base address
    // is set.
    if name == INDEX_FILE {
        return Problem::not_found().into_response();
    }
    match file(&name) {
        Ok((content_type, bytes)) => (content_type, bytes).into_response(),
        Err(problem) => problem.into_response(),
    }
}

type ContentType = [(header::HeaderName, HeaderValue); 1];

fn file(name: &str) -> Result<(ContentType, Vec<u8>), Problem> {
    let file = utoipa_swagger_ui::serve(name, Arc::clone(&CONFIG))
        .map_err(|error| {
            tracing::error!(error = %error, file = name, "cannot serve a file of the reference page");
            Problem::internal()
        })?
        .ok_or_else(Problem::not_found)?;
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        file.bytes.into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn text(response: Response) -> String {
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn the_page_resolves_its_files_under_docs_and_reads_the_document() {
        let page = text(page()).await;
        assert!(page.contains("<base href=\"/docs/\">"), "{page}");
        assert!(page.contains("swagger-initializer.js"), "{page}");
        let initializer = text(page_file(Path("swagger-initializer.js".to_owned())).await).await;
        for needle in [
            "\"url\": \"/openapi.json\"",
            "\"persistAuthorization\": true",
            "\"tryItOutEnabled\": true",
            "\"validatorUrl\": \"none\"",
        ] {
            assert!(initializer.contains(needle), "{needle}:\n{initializer}");
        }
    }

    #[tokio::test]
    async fn unknown_files_and_the_bare_index_are_not_found() {
        for name in ["nothing.js", "../Cargo.toml", INDEX_FILE] {
            let response = page_file(Path(name.to_owned())).await;
            assert_eq!(response.status(), 404, "{name}");
        }
    }
}
