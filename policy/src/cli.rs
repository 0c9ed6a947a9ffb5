//! The command line both planes parse: no environment value is ever shown by `--help` or an
//! error, since database and Redis URLs carry passwords.

use clap::{Command, CommandFactory, Parser};

/// `C`'s command with every environment value hidden.
pub fn command<C: CommandFactory>() -> Command {
    C::command().mut_args(|arg| arg.hide_env_values(true))
}

/// Parses the process's arguments and environment into `C` (exits with clap's message on an
/// error, as `Parser::parse` does).
pub fn parse<C: Parser>() -> C {
    let matches = command::<C>().get_matches();
    C::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The arguments read from the environment whose values `--help` would show (none, for a
/// command made by [`command`]).
pub fn shown_env_values(command: &Command) -> Vec<String> {
    command
        .get_arguments()
        .filter(|a| a.get_env().is_some() && !a.is_hide_env_values_set())
        .map(|a| a.get_id().to_string())
        .collect()
}
