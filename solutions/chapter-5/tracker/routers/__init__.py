"""The HTTP endpoints: one APIRouter per module, each with its own tag."""
