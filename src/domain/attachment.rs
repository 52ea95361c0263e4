//! Documents a requester attaches to a recovery request: which kinds are accepted (judged by
//! the bytes, and the declared type must agree) and how a filename is made safe to store and
//! to hand back in a `Content-Disposition` header.

/// The most attachments on one request.
pub const MAX_ATTACHMENTS_PER_REQUEST: i64 = 3;

/// An accepted kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentKind {
    /// `application/pdf`.
    Pdf,
    /// `image/png`.
    Png,
    /// `image/jpeg`.
    Jpeg,
}

/// Why a file is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    /// The bytes are not a PDF, PNG or JPEG.
    #[error("only PDF, PNG and JPEG files are accepted")]
    UnsupportedContent,
    /// The declared type is not the type of the bytes.
    #[error("the declared content type does not match the file's content")]
    DeclaredTypeMismatch,
    /// The file is empty.
    #[error("the file is empty")]
    Empty,
}

impl AttachmentKind {
    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }

    /// The kind of `bytes` (sniffed with the `infer` crate), checked against the type the
    /// client declared (`image/jpg` is read as `image/jpeg`).
    pub fn judge(bytes: &[u8], declared: Option<&str>) -> Result<Self, AttachmentError> {
        if bytes.is_empty() {
            return Err(AttachmentError::Empty);
        }
        let kind = match infer::get(bytes).map(|t| t.mime_type()) {
            Some("application/pdf") => Self::Pdf,
            Some("image/png") => Self::Png,
            Some("image/jpeg") => Self::Jpeg,
            _ => return Err(AttachmentError::UnsupportedContent),
        };
        let declared = declared
            .map(|d| {
                d.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let declared = if declared == "image/jpg" {
            "image/jpeg".to_owned()
        } else {
            declared
        };
        if declared != kind.mime() {
            return Err(AttachmentError::DeclaredTypeMismatch);
        }
        Ok(kind)
    }
}

/// A filename safe to store and to send back: the last path segment only, letters, digits and
/// `.`, `-`, `_` kept (anything else becomes `_`), no leading dots, at most 100 characters;
/// `attachment` when nothing is left.
pub fn sanitize_filename(raw: Option<&str>) -> String {
    let base = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed: String = cleaned.trim_start_matches('.').chars().take(100).collect();
    if trimmed.trim_matches(['_', '.']).is_empty() {
        "attachment".to_owned()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const EXE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff";

    #[test]
    fn kinds_are_judged_by_the_bytes_and_the_declaration_must_agree() {
        assert_eq!(
            AttachmentKind::judge(PDF, Some("application/pdf")),
            Ok(AttachmentKind::Pdf)
        );
        assert_eq!(
            AttachmentKind::judge(PNG, Some("image/png")),
            Ok(AttachmentKind::Png)
        );
        assert_eq!(
            AttachmentKind::judge(EXE, Some("application/pdf")),
            Err(AttachmentError::UnsupportedContent)
        );
        assert_eq!(
            AttachmentKind::judge(PNG, Some("application/pdf")),
            Err(AttachmentError::DeclaredTypeMismatch)
        );
        assert_eq!(
            AttachmentKind::judge(PDF, None),
            Err(AttachmentError::DeclaredTypeMismatch)
        );
        assert_eq!(
            AttachmentKind::judge(b"", Some("application/pdf")),
            Err(AttachmentError::Empty)
        );
    }

    #[test]
    fn filenames_lose_paths_and_odd_characters() {
        assert_eq!(sanitize_filename(Some("id card.pdf")), "id_card.pdf");
        assert_eq!(sanitize_filename(Some("../../etc/passwd")), "passwd");
        assert_eq!(sanitize_filename(Some("C:\\x\\a\"b;.png")), "a_b_.png");
        assert_eq!(sanitize_filename(Some("...")), "attachment");
        assert_eq!(sanitize_filename(None), "attachment");
        assert_eq!(sanitize_filename(Some("\r\nx.pdf")), "__x.pdf");
        assert!(sanitize_filename(Some(&"a".repeat(300))).len() <= 100);
    }
}
