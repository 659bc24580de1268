//! The server's check of a hook's descriptor ([`check_export`]) and the short summary of
//! abi_stable's layout report.

use std::{ffi::c_void, fmt};

use abi_stable::{
    abi_stability::abi_checking::{
        AbiInstability, AbiInstabilityErrors, check_layout_compatibility,
    },
    library::AbiHeader,
    type_layout::TLFieldOrFunction,
};

use super::{API_VERSION, DESCRIPTOR_VERSION, Hook, HookExport, HookExportV1, HookKind, MAGIC};

/// Why a symbol is not a usable hook of the expected kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportError {
    /// The symbol does not start with [`MAGIC`]: it is some other function or variable.
    NotAHook,
    /// A descriptor of a layout this server does not know.
    DescriptorVersion {
        /// The descriptor's version.
        found: u32,
    },
    /// A hook of another kind.
    WrongKind {
        /// The kind the setting needs.
        expected: HookKind,
        /// The kind the plugin exports, when known.
        found: Option<HookKind>,
    },
    /// Built against a plugin-api this server cannot load.
    IncompatibleApi {
        /// The plugin's plugin-api version.
        plugin: String,
        /// The server's.
        host: String,
        /// Why, in a few lines.
        summary: String,
    },
    /// Built with `panic = "abort"`.
    PanicAbort,
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::NotAHook => f.write_str(
                "the symbol is not a hookgate hook (no hook descriptor there); \
                 check the attribute name",
            ),
            ExportError::DescriptorVersion { found } => write!(
                f,
                "the hook descriptor has version {found}, this server reads versions 1 to \
                 {DESCRIPTOR_VERSION}; rebuild the plugin against this server's plugin-api"
            ),
            ExportError::WrongKind { expected, found: Some(found) } => write!(
                f,
                "the hook is a `{found}` hook (exported with {}), but this setting needs a \
                 `{expected}` hook",
                found.export_macro()
            ),
            ExportError::WrongKind { expected, found: None } => {
                write!(f, "the hook is of an unknown kind; this setting needs a `{expected}` hook")
            }
            ExportError::IncompatibleApi { plugin, host, summary } if plugin == host => write!(
                f,
                "incompatible plugin-api: the plugin's hook types differ from this server's \
                 although both say plugin-api {host} (a modified copy?); rebuild the plugin \
                 against this server's plugin-api\n{summary}"
            ),
            ExportError::IncompatibleApi { plugin, host, summary } => write!(
                f,
                "incompatible plugin-api: the plugin was built with plugin-api {plugin}, \
                 this server uses {host}; rebuild the plugin against plugin-api {host}\n{summary}"
            ),
            ExportError::PanicAbort => f.write_str(
                "the plugin was built with panic = \"abort\" and could not contain its own \
                 panics; build it with panic = \"unwind\" (the default)",
            ),
        }
    }
}

impl std::error::Error for ExportError {}

/// A hook that passed [`check_export`], and what its descriptor says of it.
#[derive(Debug)]
pub struct Exported<H: 'static> {
    /// The hook.
    pub hook: &'static H,
    /// The plugin-api version the plugin was built with: major, minor, patch.
    pub api_version: [u32; 3],
    /// The descriptor's flags ([`HookExport::NON_BLOCKING`]); 0 for a version 1 descriptor.
    pub flags: u32,
}

impl<H> Exported<H> {
    /// The plugin-api version as text.
    pub fn api_version_string(&self) -> String {
        super::hooks::version_string(self.api_version)
    }

    /// Whether the plugin declared the hook non-blocking.
    pub fn non_blocking(&self) -> bool {
        self.flags & HookExport::NON_BLOCKING != 0
    }
}

/// Checks a descriptor found at `symbol` and returns the hook it describes.
///
/// # Safety
/// `symbol` must point to at least 8 readable bytes (any symbol address from `dlsym` does), and
/// when those bytes are [`MAGIC`], to a [`HookExport`] of the version it names (1 or 2) that
/// lives for the rest of the process (plugins are never unloaded).
pub unsafe fn check_export<H: Hook>(symbol: *const c_void) -> Result<Exported<H>, ExportError> {
    // SAFETY: the caller promises 8 readable bytes; the read is unaligned-safe.
    let magic = unsafe { symbol.cast::<[u8; 8]>().read_unaligned() };
    if magic != MAGIC {
        return Err(ExportError::NotAHook);
    }
    // SAFETY: a descriptor starts with the magic, then the version, at a fixed offset.
    let descriptor_version = unsafe { symbol.cast::<u8>().add(8).cast::<u32>().read_unaligned() };
    if !(1..=DESCRIPTOR_VERSION).contains(&descriptor_version) {
        return Err(ExportError::DescriptorVersion { found: descriptor_version });
    }
    // SAFETY: magic and version match, so version 1's fields are at `symbol` (every version
    // starts with them, `repr(C)`), in a `static`.
    let export: &'static HookExportV1 = unsafe { &*symbol.cast::<HookExportV1>() };
    let flags = if descriptor_version >= 2 {
        // SAFETY: a version 2 descriptor is a whole `HookExport`.
        unsafe { (*symbol.cast::<HookExport>()).flags }
    } else {
        0
    };

    if export.kind != H::KIND.code() {
        return Err(ExportError::WrongKind {
            expected: H::KIND,
            found: HookKind::from_code(export.kind),
        });
    }
    let host_version = API_VERSION;
    let compatible_version = export.api_version[0] == host_version[0]
        && (host_version[0] != 0 || export.api_version[1] == host_version[1]);
    if !compatible_version || !export.abi_header.is_valid() {
        let summary = if export.abi_header.is_valid() {
            "    (versions with a different major version, or a different minor version \
             before 1.0, are not compatible)"
                .to_owned()
        } else {
            format!(
                "    abi_stable {}.{} in the plugin, {}.{} in the server",
                export.abi_header.abi_major,
                export.abi_header.abi_minor,
                AbiHeader::VALUE.abi_major,
                AbiHeader::VALUE.abi_minor
            )
        };
        return Err(ExportError::IncompatibleApi {
            plugin: export.api_version_string(),
            host: crate::PLUGIN_API_VERSION.to_owned(),
            summary,
        });
    }
    if export.panic_unwind != 1 {
        return Err(ExportError::PanicAbort);
    }
    if let Err(errors) = check_layout_compatibility(H::LAYOUT, export.layout) {
        return Err(ExportError::IncompatibleApi {
            plugin: export.api_version_string(),
            host: crate::PLUGIN_API_VERSION.to_owned(),
            summary: summarize_layout_errors(&errors),
        });
    }
    // SAFETY: the kind and the layout match `H`, and `hook` points to a `static H`.
    let hook = unsafe { &*export.hook.cast::<H>() };
    Ok(Exported { hook, api_version: export.api_version, flags })
}

/// At most this many lines of a layout summary are shown.
const MAX_SUMMARY_LINES: usize = 6;

/// A few readable lines from abi_stable's report (which runs to hundreds of lines):
/// `    OpenIdFfi: too many fields (expected 10, found 11)`.
pub fn summarize_layout_errors(errors: &AbiInstabilityErrors) -> String {
    let mut lines: Vec<String> = Vec::new();
    for error in errors.errors.iter() {
        let place = error
            .stack_trace
            .iter()
            .map(|step| match &step.expected {
                TLFieldOrFunction::Field(field) => field.name().to_owned(),
                TLFieldOrFunction::Function(function) => function.name.to_string(),
            })
            .fold(Vec::<String>::new(), |mut parts, part| {
                if parts.last() != Some(&part) {
                    parts.push(part);
                }
                parts
            })
            .join(".");
        let type_name = error
            .stack_trace
            .last()
            .map(|step| match &step.expected {
                TLFieldOrFunction::Field(field) => field.layout().name().to_owned(),
                TLFieldOrFunction::Function(_) => "fn".to_owned(),
            })
            .unwrap_or_else(|| errors.interface.name().to_owned());
        for instability in error.errs.iter() {
            let what = describe_instability(instability);
            let line = if place.is_empty() {
                format!("    {type_name}: {what}")
            } else {
                format!("    {type_name} (at {place}): {what}")
            };
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    if lines.is_empty() {
        lines.push("    the hook's type layouts differ".to_owned());
    }
    let n_lines = lines.len();
    if n_lines > MAX_SUMMARY_LINES {
        lines.truncate(MAX_SUMMARY_LINES);
        lines.push(format!("    … and {} more differences", n_lines - MAX_SUMMARY_LINES));
    }
    lines.join("\n")
}

fn describe_instability(instability: &AbiInstability) -> String {
    use AbiInstability as AI;
    match instability {
        AI::Size(v) => format!("different size (expected {}, found {})", v.expected, v.found),
        AI::Alignment(v) => {
            format!("different alignment (expected {}, found {})", v.expected, v.found)
        }
        AI::FieldCountMismatch(v) => {
            format!("different number of fields (expected {}, found {})", v.expected, v.found)
        }
        AI::UnexpectedField(v) => {
            format!(
                "unexpected field (expected `{}`, found `{}`)",
                v.expected.name(),
                v.found.name()
            )
        }
        AI::Name(v) => format!("different type (expected {}, found {})", v.expected, v.found),
        AI::TooManyVariants(v) => {
            format!("different number of variants (expected {}, found {})", v.expected, v.found)
        }
        AI::UnexpectedVariant(v) => {
            format!("unexpected variant (expected {}, found {})", v.expected, v.found)
        }
        AI::PackageVersion(v) => {
            format!("incompatible package version (expected {}, found {})", v.expected, v.found)
        }
        AI::MismatchedPrimitive(_) => "different primitive type".to_owned(),
        AI::FnLifetimeMismatch(_) | AI::FieldLifetimeMismatch(_) => {
            "different lifetimes".to_owned()
        }
        AI::FnQualifierMismatch(_) => "different function qualifiers".to_owned(),
        AI::ReprAttr(v) => {
            format!("different repr (expected {:?}, found {:?})", v.expected, v.found)
        }
        AI::EnumDiscriminant(_) => "different enum discriminants".to_owned(),
        other => {
            let text = format!("{other:?}");
            text.split(['(', ' ', '{']).next().unwrap_or("layout difference").to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::c_void;

    use abi_stable::std_types::RResult;

    use super::{ExportError, check_export};
    use crate::{
        HookError, SignInRequest,
        abi::{CustomSsoHook2, HookExport, HookExportV1, OpenIdFfi, SignInHook},
    };

    extern "C" fn refuse(_: &SignInRequest<'_>) -> RResult<OpenIdFfi, HookError> {
        RResult::RErr(HookError::rejected("test"))
    }

    static HOOK: SignInHook = SignInHook { call: refuse };
    static PLAIN: HookExport = HookExport::new(&HOOK, true);
    static NON_BLOCKING: HookExport =
        HookExport::new(&HOOK, true).with_flags(HookExport::NON_BLOCKING);
    /// As plugin-api 0.1.0 and 0.1.1 exported a hook.
    static VERSION_1: HookExportV1 = HookExportV1::new(&HOOK, true);
    static VERSION_3: HookExportV1 = {
        let mut export = HookExportV1::new(&HOOK, true);
        export.descriptor_version = 3;
        export
    };

    fn address<T>(export: &'static T) -> *const c_void {
        (export as *const T).cast()
    }

    #[test]
    fn a_version_2_descriptor_carries_its_flags() {
        // SAFETY: the addresses of descriptors in statics.
        let plain = unsafe { check_export::<SignInHook>(address(&PLAIN)) }.unwrap();
        assert!(!plain.non_blocking());
        let declared = unsafe { check_export::<SignInHook>(address(&NON_BLOCKING)) }.unwrap();
        assert!(declared.non_blocking());
        assert!(std::ptr::eq(declared.hook, &HOOK));
        assert_eq!(declared.api_version_string(), crate::PLUGIN_API_VERSION);
    }

    #[test]
    fn a_version_1_descriptor_still_loads_without_flags() {
        assert_eq!(VERSION_1.descriptor_version, 1);
        // SAFETY: the address of a version 1 descriptor in a static.
        let exported = unsafe { check_export::<SignInHook>(address(&VERSION_1)) }.unwrap();
        assert!(!exported.non_blocking());
        assert!(std::ptr::eq(exported.hook, &HOOK));
    }

    #[test]
    fn an_unknown_descriptor_version_or_kind_is_refused_by_name() {
        // SAFETY: the addresses of descriptors in statics.
        let error = unsafe { check_export::<SignInHook>(address(&VERSION_3)) }.unwrap_err();
        assert_eq!(error, ExportError::DescriptorVersion { found: 3 });
        assert!(error.to_string().contains("reads versions 1 to 2"), "{error}");
        let error = unsafe { check_export::<CustomSsoHook2>(address(&NON_BLOCKING)) }.unwrap_err();
        assert!(matches!(error, ExportError::WrongKind { .. }), "{error:?}");
    }
}
