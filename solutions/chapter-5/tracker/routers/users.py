from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tracker.models import User
from tracker.schemas import UserCreate, UserPublic
from tracker.shared.database import SessionDep
from tracker.shared.security import CurrentUser, password_hash

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(payload: UserCreate, session: SessionDep):
    user = User(email=payload.email, full_name=payload.full_name,
                hashed_password=password_hash.hash(payload.password))
    session.add(user)
    try:
        session.flush()  # the unique email is checked here, inside the handler
    except IntegrityError:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, "A user with this email already exists") from None
    print("created user", user.id)
    return user


# Before /{user_id}: routes are matched in order, and "me" is not an id.
@router.get("/me", response_model=UserPublic)
def read_me(user: CurrentUser):
    return user


@router.get("", response_model=list[UserPublic])
def list_users(user: CurrentUser, session: SessionDep):
    return session.scalars(select(User).order_by(User.id)).all()


@router.get("/{user_id}", response_model=UserPublic)
def get_user(user_id: int, user: CurrentUser, session: SessionDep):
    found = session.get(User, user_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "User not found")
    return found
