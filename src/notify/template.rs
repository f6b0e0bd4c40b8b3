//! Mail templates: built into the binary, overridable file by file by the admin.
//!
//! The shipped files live in `config/templates/`; the same text is compiled in so that a
//! binary always has working templates. A file of the same name in `notify.templates_dir`
//! replaces the built-in one. Templates are minijinja; `.html` ones are auto-escaped, and
//! undefined variables are errors, so `leakwatch check` catches a typo before a mail does.
//! The first line of every `.txt` template is `Subject: …`.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::config::Lang;

pub const NAMES: &[(&str, &str)] = &[
    (
        "user.fr.txt",
        include_str!("../../config/templates/user.fr.txt"),
    ),
    (
        "user.fr.html",
        include_str!("../../config/templates/user.fr.html"),
    ),
    (
        "user.en.txt",
        include_str!("../../config/templates/user.en.txt"),
    ),
    (
        "user.en.html",
        include_str!("../../config/templates/user.en.html"),
    ),
    (
        "digest.fr.txt",
        include_str!("../../config/templates/digest.fr.txt"),
    ),
    (
        "digest.fr.html",
        include_str!("../../config/templates/digest.fr.html"),
    ),
    (
        "digest.en.txt",
        include_str!("../../config/templates/digest.en.txt"),
    ),
    (
        "digest.en.html",
        include_str!("../../config/templates/digest.en.html"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {name}: {message}")]
    Render { name: String, message: String },
    #[error("template {name}: the first line must be `Subject: …`")]
    NoSubject { name: String },
}

/// A rendered mail: subject, plain text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    env: Environment<'static>,
    /// Where each template came from, for `check`.
    origins: Vec<(String, String)>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("origins", &self.origins)
            .finish()
    }
}

impl Templates {
    pub fn load(override_dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut origins = Vec::new();
        for (name, builtin) in NAMES {
            let (source, origin) = match override_dir.map(|d| d.join(name)) {
                Some(path) if path.exists() => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    (text, path.display().to_string())
                }
                _ => (builtin.to_string(), "built-in".to_string()),
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| TemplateError::Render {
                    name: name.to_string(),
                    message: e.to_string(),
                })?;
            origins.push((name.to_string(), origin));
        }
        Ok(Templates { env, origins })
    }

    pub fn origins(&self) -> &[(String, String)] {
        &self.origins
    }

    /// Renders `<base>.<lang>.txt` and `.html` with `ctx`.
    pub fn render(
        &self,
        base: &str,
        lang: Lang,
        ctx: &impl Serialize,
    ) -> Result<Rendered, TemplateError> {
        let render = |ext: &str| {
            let name = format!("{base}.{}.{ext}", lang.code());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(ctx))
                .map_err(|e| TemplateError::Render {
                    name: name.clone(),
                    message: format!("{e:#}"),
                })
                .map(|s| (name, s))
        };
        let (txt_name, text) = render("txt")?;
        let (_, html) = render("html")?;
        let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = first
            .strip_prefix("Subject:")
            .ok_or(TemplateError::NoSubject { name: txt_name })?
            .trim()
            .to_string();
        Ok(Rendered {
            subject,
            text: body.trim_start_matches(['\r', '\n']).to_string(),
            html,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Ctx {
        org_name: &'static str,
    }

    #[test]
    fn override_dir_replaces_one_template_and_errors_name_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("digest.en.txt"),
            "Subject: Custom {{ org_name }}\n\nBody for {{ org_name }}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("digest.en.html"), "<p>{{ org_name }}</p>").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t
            .render("digest", Lang::En, &Ctx { org_name: "A & B" })
            .unwrap();
        assert_eq!(r.subject, "Custom A & B");
        assert_eq!(r.text, "Body for A & B");
        // HTML templates are escaped.
        assert_eq!(r.html, "<p>A &amp; B</p>");
        let origins = t.origins();
        assert!(origins
            .iter()
            .any(|(n, o)| n == "digest.en.txt" && o.contains("digest.en.txt")));
        assert!(origins
            .iter()
            .any(|(n, o)| n == "user.fr.txt" && o == "built-in"));

        // A variable the context lacks is an error that names the template.
        std::fs::write(dir.path().join("digest.en.txt"), "Subject: {{ nope }}\n").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let err = t
            .render("digest", Lang::En, &Ctx { org_name: "A" })
            .unwrap_err()
            .to_string();
        assert!(err.contains("digest.en.txt"), "{err}");
        // A text template without its Subject line is refused.
        std::fs::write(dir.path().join("digest.en.txt"), "Hello\n").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert!(matches!(
            t.render("digest", Lang::En, &Ctx { org_name: "A" }),
            Err(TemplateError::NoSubject { .. })
        ));
    }
}
