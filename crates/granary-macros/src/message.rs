//! `#[derive(Message)]`: the `Message` impl and the wire registrations.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr, Type};

/// The keys of `#[message(...)]`.
struct Args {
    reply: Option<Type>,
    name: Option<LitStr>,
    version: Option<syn::LitInt>,
}

pub(crate) fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let args = parse_args(&input)?;
    let ident = &input.ident;
    let Some(reply) = args.reply else {
        return Err(syn::Error::new(
            ident.span(),
            format!(
                "#[derive(Message)] needs the reply type: add `#[message(reply = Type)]` \
                 above `{ident}` (`reply = ()` for a message answered with nothing)"
            ),
        ));
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Message)] does not take generic types: a wire name names one type; \
             implement `Message` and `register_message!` each instantiation by hand",
        ));
    }
    let name = match args.name {
        Some(name) => quote!(#name),
        None => {
            let type_name = ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #type_name))
        }
    };
    // Spanned on the message and on the reply type, so that a missing `Serialize`
    // points at the type that lacks it.
    let version = match &args.version {
        Some(v) => quote!(#v),
        None => quote!(1),
    };
    let register_message = quote_spanned! {ident.span()=>
        ::granary::__macros::inventory::submit! {
            ::granary::__macros::MessageRegistration::new::<#ident>(#name).with_version(#version)
        }
    };
    let register_reply = quote_spanned! {reply.span()=>
        ::granary::__macros::inventory::submit! {
            ::granary::__macros::MessageRegistration::reply::<#reply>()
        }
    };
    Ok(quote! {
        impl ::granary::__macros::Message for #ident {
            type Reply = #reply;
        }
        #register_message
        #register_reply
    })
}

fn parse_args(input: &DeriveInput) -> syn::Result<Args> {
    let mut args = Args {
        reply: None,
        name: None,
        version: None,
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("message")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("reply") {
                if args.reply.is_some() {
                    return Err(meta.error("`reply` is given twice"));
                }
                args.reply = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("name") {
                if args.name.is_some() {
                    return Err(meta.error("`name` is given twice"));
                }
                let name: LitStr = meta.value()?.parse()?;
                if name.value().is_empty() {
                    return Err(syn::Error::new(name.span(), "the wire name is empty"));
                }
                args.name = Some(name);
            } else if meta.path.is_ident("version") {
                if args.version.is_some() {
                    return Err(meta.error("`version` is given twice"));
                }
                let version: syn::LitInt = meta.value()?.parse()?;
                match version.base10_parse::<u32>() {
                    Ok(v) if v >= 1 => {}
                    _ => {
                        return Err(syn::Error::new(
                            version.span(),
                            "the contract version is a whole number from 1 (u32)",
                        ))
                    }
                }
                args.version = Some(version);
            } else {
                return Err(crate::unknown_key(
                    &meta,
                    "message",
                    "`reply = Type`, `name = \"...\"` or `version = N`",
                ));
            }
            Ok(())
        })?;
    }
    Ok(args)
}
